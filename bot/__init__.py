"""threadbot: a Slack bot that answers in threads with a bounded, tool-using model agent."""
