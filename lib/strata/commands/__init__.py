"""CLI command groups, one module per area; each exposes ``register(app)``.

Keeping areas in their own modules lets ``strata.cli`` stay a short list and lets each area's commands
live next to nothing but their own option parsing.
"""
