"""The policy registry (entry-point group ``vla_studio.policies``)."""

from __future__ import annotations

from vla_studio.core.registry import Registry
from vla_studio.policies.base import Policy

# Built-in kinds; plugins add theirs through the entry-point group.
BUILTIN_POLICIES = {
    "vla": "vla_studio.policies.vla.policy:VLAPolicy",
    "small_conv": "vla_studio.policies.small_conv:SmallConvPolicy",
}

POLICIES: Registry[Policy] = Registry("policy", "vla_studio.policies", BUILTIN_POLICIES, Policy)
