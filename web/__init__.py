"""The shop's pages and the operator's console: static HTML and a little
JavaScript over the public JSON API, served behind the ingress under /shop/
and /console/. The pages talk to the services only through the ingress, as
any shop front end would; this package imports no service."""
