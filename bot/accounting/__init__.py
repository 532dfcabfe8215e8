"""bot.accounting."""
