"""VLA Studio's Franka driver (robot kind ``franka``), on franky-control.

See ``vla_studio_franka.robot`` for the driver and ``docs/robots.md`` for the contract it keeps.
"""
