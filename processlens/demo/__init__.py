"""The demo world: an order-to-cash business across four systems, with ground truth."""
