"""Developer tooling: the local Lambda (AWS's Runtime Interface Emulator) and the demo."""
