"""Package data: shaders, icons and the built-in demo scene."""
