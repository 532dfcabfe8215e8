"""bot.console.session."""
