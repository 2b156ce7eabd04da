"""Faust stream stages: thin wrappers that move data between topics and call the pure logic in
streaming/ and models/. The app, topics and table are declared in faust_app.py."""
