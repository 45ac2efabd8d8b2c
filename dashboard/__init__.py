"""The processlens dashboard: a Streamlit app over the event store and the engines.

``dashboard.app`` is the entry point given to ``streamlit run``; ``dashboard.server.serve``
starts it. Pure, tested queries live in ``dashboard.queries``; ``dashboard.data`` caches them
by the store's data version; ``dashboard.filters`` holds the global view filter.
"""
