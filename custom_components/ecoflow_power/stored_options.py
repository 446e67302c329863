"""Reading the entry's options defensively: a value of the wrong shape is left out.

The options forms only store well-formed values. A hand-edited or foreign
storage file may not: each reader takes its part through these, so a bad
value costs its own feature (and raises the `options_invalid` repair, see
`misshapen`), never the entry's setup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

from .const import (
    CONF_ADD_NEW_DEVICES,
    CONF_AGENTS,
    CONF_DEVICES,
    CONF_EXCLUDED_DEVICES,
    CONF_POLICY,
    CONF_RESTORE,
    CONF_TOPIC_PREFIX,
    CONF_WAKE_TARGETS,
)
from .nut.config import CONF_NUT

# The options a mapping is stored under (station serial or agent id -> settings).
# "sentinels" is sentinel.CONF_SENTINELS, which imports this module.
_MAPPINGS = (CONF_AGENTS, CONF_POLICY, CONF_RESTORE, CONF_WAKE_TARGETS, "sentinels", CONF_NUT)
_LISTS = (CONF_DEVICES, CONF_EXCLUDED_DEVICES)


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def mapping_option(options: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return mapping(options.get(key))


def strings_option(options: Mapping[str, Any], key: str) -> list[str]:
    """A stored list of serials: its strings (nothing when it is no list)."""
    value = options.get(key)
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, str)]


def valid_topic_prefix(prefix: object) -> TypeGuard[str]:
    """A prefix HA can publish under: no wildcards, not a $SYS-like topic, not empty."""
    return (
        isinstance(prefix, str)
        and bool(prefix)
        and not any(char in prefix for char in "+#\0")
        and not prefix.startswith("$")
        and prefix.isprintable()  # no control characters, no lone surrogates
        and len(prefix.encode()) <= 200
    )


def misshapen(options: Mapping[str, Any]) -> list[str]:
    """The options whose stored value has the wrong shape (they are read as empty)."""
    wrong = [key for key in _MAPPINGS if key in options and not isinstance(options[key], Mapping)]
    wrong += [
        key
        for key in _LISTS
        if key in options
        and not (
            isinstance(options[key], list | tuple)
            and all(isinstance(item, str) for item in options[key])
        )
    ]
    if CONF_ADD_NEW_DEVICES in options and not isinstance(options[CONF_ADD_NEW_DEVICES], bool):
        wrong.append(CONF_ADD_NEW_DEVICES)
    if CONF_TOPIC_PREFIX in options and not valid_topic_prefix(options[CONF_TOPIC_PREFIX]):
        wrong.append(CONF_TOPIC_PREFIX)
    return wrong
