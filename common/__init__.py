# guild_common: pure functions of files and strings shared by guildd and guildctl
# (GUILD_HOME, run-dir format, flag values, flag detection, source code rules, output scalars).
# No sockets, servers or daemon state live here.

# The version of the whole distribution; client and daemon compare theirs (GetDaemonInfo).
__version__ = "0.1.0"
