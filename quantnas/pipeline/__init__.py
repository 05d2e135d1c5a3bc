"""The main job: config resolution, the job stages, the run, its report."""
