// Renders the contract served beside this page; nothing is fetched from anywhere else.
// Both are relative to the page, so they work under an API Gateway stage (/api/docs) too.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("v1/openapi.json", window.location.href).href,
    dom_id: "#reference",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // The default validator badge calls a public web service: off, so the page stays offline.
    validatorUrl: null,
    tryItOutEnabled: false,
    // Keys stay in this page's memory: never written to the browser's storage.
    persistAuthorization: false,
  });
});
