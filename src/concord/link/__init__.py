"""A link's lifecycle and state beside the engine: activation (activate, pause, resume,
deactivate), status (pending counts, directions) and conflict resolution."""
