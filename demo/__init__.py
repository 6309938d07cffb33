"""`gray demo`: sample models, traffic and plans that show a whole rollout on one machine."""
