"""The market kernel the mock source and the simulator share: instrument, book model, seeding, pacing, settings."""
