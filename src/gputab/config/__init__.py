"""Configuration: the TOML file's typed sections, reading and checking it, and the default paths."""
