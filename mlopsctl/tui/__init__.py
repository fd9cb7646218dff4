"""The Textual monitor (``mlopsctl monitor``): app, screens and widgets. It reads through
``mlopsctl.monitoring`` and writes through the same services as the CLI; nothing outside this
package imports it."""
