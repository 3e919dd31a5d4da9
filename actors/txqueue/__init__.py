"""The txqueue feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.txqueue.actor import TransactionMessageQueue
    return [(TransactionMessageQueue, TransactionMessageQueue.start(station.db_path, station.config_for(TransactionMessageQueue),
                                                                    station.settings.queue_max_messages,
                                                                    station.scheduler))]
