# Generated gRPC modules (see proto/generate.py); imported by guildd and guildctl.
