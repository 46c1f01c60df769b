"""The gRPC server: servicer (proto ⇄ domain), interceptors, app."""
