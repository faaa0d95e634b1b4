// Starts Swagger UI on /docs. A file of its own, not an inline script, so that the page
// keeps a Content-Security-Policy without 'unsafe-inline' for scripts.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
