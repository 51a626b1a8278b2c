"""Pure Hamilton dataflows; these modules never import dagster."""
