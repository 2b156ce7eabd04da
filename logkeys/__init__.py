"""Raw log lines to log keys: presets, drain3 template mining and frozen matching."""
