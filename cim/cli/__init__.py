"""The one `cim` command."""
