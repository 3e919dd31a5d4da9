"""The station's actors: one module per actor, each a thin shell around plain decisions."""
