"""The supervisor board: a static page (HTML/JS/CSS, no build step) fed by the alerts API."""
