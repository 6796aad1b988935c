"""TUI widgets: one widget per module."""
