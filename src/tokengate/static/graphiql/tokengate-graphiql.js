// tokengate: served from the package, no CDN, and from a file (the page's CSP allows no inline script).
// Put your token in the Headers pane:
//   { "Authorization": "Bearer tgu_…" }
// Headers are kept for this tab only (not persisted), so a token never lands in localStorage.
const EXAMPLE_QUERY = `# tokengate — to run queries, open the Headers pane below and add
#   {"Authorization": "Bearer <your token>"}
{
  viewer {
    kind
    account { id name plan }
  }
}
`;
// Empty by default: the schema is public, so docs and autocompletion load before a token is set.
const DEFAULT_HEADERS = "";
const fetchURL = window.location.href.split("?")[0].split("#")[0];
const fetcher = GraphiQL.createFetcher({ url: fetchURL });

function TokengateGraphiQL() {
  const explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();
  return React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultEditorToolsVisibility: true,
    plugins: [explorerPlugin],
    defaultQuery: EXAMPLE_QUERY,
    defaultHeaders: DEFAULT_HEADERS,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
    inputValueDeprecation: true,
  });
}

ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(TokengateGraphiQL));
