"""The one error of every configuration check, from a detector's parameters (the lowest layer)
up to the service settings: :mod:`driftline.learners.config` and :mod:`driftline.settings` raise it too."""


class ConfigError(ValueError):
    """A setting that cannot work. The message starts with the dotted key."""
