"""Notification routes: WeCom group robot, generic JSON webhook, MQTT."""
