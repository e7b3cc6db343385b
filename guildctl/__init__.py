# guildctl: the command line client. It resolves what to run in the user's project, sends the
# daemon a self-contained run spec, and formats what the daemon answers. It never touches the
# run store itself.
