"""The operator console (docs/console.md): pages under /console served by the gateway."""
