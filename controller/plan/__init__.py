"""The rollout plan: models, YAML source with positions, problems, whole-plan checks."""
