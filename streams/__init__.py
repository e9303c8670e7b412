"""safeguarding-streams: event-time detection of missed child-safeguarding opportunities."""

__version__ = "0.1.0"
