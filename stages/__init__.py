"""The DVC stages: one thin Typer command each. They read params.yaml, call ``sert``, write outputs."""
