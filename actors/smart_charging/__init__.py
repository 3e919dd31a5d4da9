"""The Smart Charging feature (issue 12, in progress): the schedule calculator and the profiles book; not in
actors/features.py FEATURES yet (no actor, no handlers), so the station does not claim the profile."""
