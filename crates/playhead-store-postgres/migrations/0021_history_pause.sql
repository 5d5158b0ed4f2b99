-- Issue 16, pause history: a profile may stop its new playback events being recorded (each is
-- answered `paused`), optionally still moving its resume points. Decision 0082.
ALTER TABLE profiles ADD COLUMN history_paused boolean NOT NULL DEFAULT false;
ALTER TABLE profiles ADD COLUMN keep_resume_points_while_paused boolean NOT NULL DEFAULT false;
