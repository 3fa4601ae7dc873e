"""Faust app, agents, sinks, embedded local stack, feed and CLI."""
