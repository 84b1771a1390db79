"""Pure domain vocabulary shared by every layer: units, enums, errors. No I/O."""
