"""Numbered SQL files that bring a warehouse made by an older version to the shape schema.sql declares."""
