-- Issue 16, pause history: a profile may stop its new playback events being recorded (each is
-- answered `paused`), optionally still moving its resume points. Decision 0082.
ALTER TABLE profiles ADD COLUMN history_paused INTEGER NOT NULL DEFAULT 0 CHECK (history_paused IN (0, 1));
ALTER TABLE profiles ADD COLUMN keep_resume_points_while_paused INTEGER NOT NULL DEFAULT 0
    CHECK (keep_resume_points_while_paused IN (0, 1));
