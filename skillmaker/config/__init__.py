"""The skill config: schema, loading, cross-field checks."""

from skillmaker.config.load import (
    LoadedConfig,
    config_hash,
    json_schema,
    load_config,
    normalised_json,
    parse_config,
    read_json_file,
    user_json,
)
from skillmaker.config.model import NETWORKS, SkillConfig

__all__ = [
    "NETWORKS",
    "LoadedConfig",
    "SkillConfig",
    "config_hash",
    "json_schema",
    "load_config",
    "normalised_json",
    "parse_config",
    "read_json_file",
    "user_json",
]
