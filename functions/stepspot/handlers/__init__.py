"""Lambda entry points. Each module is thin: parse the event, call pure logic and adapters, return JSON."""
