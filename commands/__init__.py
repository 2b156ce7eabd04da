"""The command implementations behind `python faust_app.py <command>`; plain functions, no Faust."""
