"""`guildctl view`: the web view guildd serves (aiohttp on the daemon's loop, guildd.web.server),
its JSON API and live streams over the same servicer the CLI calls (api, live, calls), who
may use it (auth), and the page (static/)."""
