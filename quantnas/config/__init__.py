"""Typed configuration: sections, fields, YAML I/O, value checks, old keys, presets."""
