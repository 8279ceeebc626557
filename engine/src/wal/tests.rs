//! Scenario tests of the WAL handle: group commit, poisoning, rotation and replay.
