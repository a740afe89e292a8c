/* Glue between the bundled @jupyter-widgets/html-manager and the offline book (fslearn course).
 * Loaded after require.js and before embed-amd.js (see nb_ipywidgets_js in _config.yml).
 *
 * 1. The widget bundle finds its fonts relative to the URL of its AMD module, which requirejs
 *    puts under the page's own folder ("<page folder>/@jupyter-widgets/html-manager/dist/").
 *    Map that module path to this folder, where the fonts are.
 * 2. The widgets typeset their labels with the MathJax 2 call MathJax.Hub.Queue(...); the book
 *    uses MathJax 3, which has no Hub. Give whatever object becomes window.MathJax a small Hub
 *    that forwards to MathJax 3's typesetPromise.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var here = script ? script.src.split("?")[0].replace(/[^/]*$/, "") : null;
  if (here && typeof window.require === "function" && window.require.config) {
    window.require.config({
      paths: { "@jupyter-widgets/html-manager/dist": here.replace(/\/$/, "") }
    });
  }

  function typeset(element) {
    var mathjax = window.MathJax;
    var ready = mathjax && mathjax.startup && mathjax.startup.promise;
    Promise.resolve(ready).then(function () {
      var current = window.MathJax;
      if (current && typeof current.typesetPromise === "function") {
        return current.typesetPromise(element ? [element] : undefined);
      }
    }).catch(function (error) {
      console.warn("MathJax could not typeset a widget label:", error);
    });
  }

  var hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset") {
          typeset(job[2]);
        }
      }
    }
  };

  function withHub(value) {
    if (value && typeof value === "object" && !value.Hub) {
      try {
        value.Hub = hub;
      } catch (error) {
        /* a frozen object: leave it */
      }
    }
    return value;
  }

  var current = withHub(window.MathJax);
  try {
    Object.defineProperty(window, "MathJax", {
      configurable: true,
      enumerable: true,
      get: function () { return current; },
      set: function (value) { current = withHub(value); }
    });
  } catch (error) {
    /* window.MathJax cannot be redefined: widgets will typeset without math support */
  }
})();
