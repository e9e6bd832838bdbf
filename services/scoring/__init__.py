"""The scoring service: who a lead is, where it stands and how well it fits and engages."""
