//! The SDK surface: tools, resources, resource templates, prompts and completions, and the
//! [`Registry`] a node serves. Handlers are async closures that get a [`Context`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::changes::{Change, ChangeBus};
use crate::context::Context;
use crate::jsonrpc::ErrorObject;
use crate::v2026_07_28::headers::{MirroredParam, mirrored_params};

/// Builders for content blocks (`text`, `image`, `audio`, `resource`, `resource_link`).
pub mod content {
    use serde_json::{Value, json};

    /// A text block.
    pub fn text(text: impl Into<String>) -> Value {
        json!({"type": "text", "text": text.into()})
    }
    /// An image block (base64 data).
    pub fn image(data_base64: impl Into<String>, mime_type: &str) -> Value {
        json!({"type": "image", "data": data_base64.into(), "mimeType": mime_type})
    }
    /// An audio block (base64 data).
    pub fn audio(data_base64: impl Into<String>, mime_type: &str) -> Value {
        json!({"type": "audio", "data": data_base64.into(), "mimeType": mime_type})
    }
    /// An embedded text resource.
    pub fn embedded_text(uri: &str, mime_type: &str, text: impl Into<String>) -> Value {
        json!({"type": "resource", "resource": {"uri": uri, "mimeType": mime_type, "text": text.into()}})
    }
    /// A link to a resource.
    pub fn resource_link(uri: &str, name: &str, mime_type: Option<&str>) -> Value {
        let mut v = json!({"type": "resource_link", "uri": uri, "name": name});
        if let Some(m) = mime_type {
            v["mimeType"] = json!(m);
        }
        v
    }
}

/// The result of `tools/call`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// Content blocks.
    pub content: Vec<Value>,
    /// Structured output (checked against the tool's output schema).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// True when the tool failed (the model sees the error; the protocol call succeeded).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl CallToolResult {
    /// One text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content: vec![content::text(text)],
            ..Default::default()
        }
    }
    /// Structured output, with its JSON text as the content block (as the spec recommends for
    /// clients that ignore `structuredContent`).
    pub fn structured(value: Value) -> Self {
        Self {
            content: vec![content::text(value.to_string())],
            structured_content: Some(value),
            is_error: false,
        }
    }
    /// A tool execution error.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            content: vec![content::text(message)],
            structured_content: None,
            is_error: true,
        }
    }
    /// Any content blocks.
    pub fn content(content: Vec<Value>) -> Self {
        Self {
            content,
            ..Default::default()
        }
    }
}

/// How a tool handler fails.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    /// The tool ran and failed: reported as an `isError` result the model can read.
    #[error("{0}")]
    Failed(String),
    /// A protocol-level error (JSON-RPC error response).
    #[error("{0}")]
    Protocol(ErrorObject),
}

impl From<ErrorObject> for ToolError {
    fn from(e: ErrorObject) -> Self {
        ToolError::Protocol(e)
    }
}

/// Boxed future of a tool handler.
pub type ToolFuture = BoxFuture<'static, Result<CallToolResult, ToolError>>;
type ToolHandler = Arc<dyn Fn(Context, Value) -> ToolFuture + Send + Sync>;

/// A tool: its descriptor and its async handler.
#[derive(Clone)]
pub struct Tool {
    /// Unique name.
    pub name: String,
    /// Description for the model.
    pub description: String,
    /// Optional display title.
    pub title: Option<String>,
    /// JSON Schema of the arguments.
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`, if any.
    pub output_schema: Option<Value>,
    /// Behaviour hints (`readOnlyHint`, `destructiveHint`, ...).
    pub annotations: Option<Value>,
    /// Its parameters mirrored into `Mcp-Param-*` headers (revision 2026-07-28), found once.
    mirrored: Vec<MirroredParam>,
    handler: ToolHandler,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Tool {
    /// A tool with an input schema and handler.
    pub fn new<F, Fut>(name: &str, description: &str, input_schema: Value, handler: F) -> Self
    where
        F: Fn(Context, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<CallToolResult, ToolError>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: description.into(),
            title: None,
            mirrored: mirrored_params(&input_schema),
            input_schema,
            output_schema: None,
            annotations: None,
            handler: Arc::new(move |ctx, args| Box::pin(handler(ctx, args))),
        }
    }

    /// The parameters its input schema mirrors into `Mcp-Param-*` headers (`x-mcp-header`).
    pub fn mirrored_params(&self) -> &[MirroredParam] {
        &self.mirrored
    }
    /// Declares the output schema.
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }
    /// Sets annotations.
    pub fn annotations(mut self, annotations: Value) -> Self {
        self.annotations = Some(annotations);
        self
    }
    /// Sets a display title.
    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The `tools/list` entry.
    pub fn descriptor(&self) -> Value {
        let mut v = json!({"name": self.name, "description": self.description, "inputSchema": self.input_schema});
        if let Some(t) = &self.title {
            v["title"] = json!(t);
        }
        if let Some(s) = &self.output_schema {
            v["outputSchema"] = s.clone();
        }
        if let Some(a) = &self.annotations {
            v["annotations"] = a.clone();
        }
        v
    }

    /// Validates the arguments and runs the handler. Argument errors are tool execution errors
    /// (`isError`) naming the field, as revision 2025-11-25 asks.
    pub async fn call(&self, ctx: Context, args: Value) -> Result<CallToolResult, ErrorObject> {
        if let Err(e) = crate::schema::validate(&self.input_schema, &args) {
            return Ok(CallToolResult::error(format!(
                "Invalid arguments for tool {}: {e}",
                self.name
            )));
        }
        match (self.handler)(ctx, args).await {
            Ok(r) => {
                if let (Some(schema), Some(sc), false) =
                    (&self.output_schema, &r.structured_content, r.is_error)
                    && let Err(e) = crate::schema::validate(schema, sc)
                {
                    return Err(ErrorObject::internal(format!(
                        "tool {} produced output that does not match its outputSchema: {e}",
                        self.name
                    )));
                }
                Ok(r)
            }
            Err(ToolError::Failed(m)) => Ok(CallToolResult::error(m)),
            Err(ToolError::Protocol(e)) => Err(e),
        }
    }
}

/// Boxed future of a resource read: the `contents` array.
pub type ReadFuture = BoxFuture<'static, Result<Vec<Value>, ErrorObject>>;
type ReadHandler =
    Arc<dyn Fn(Context, String, BTreeMap<String, String>) -> ReadFuture + Send + Sync>;

/// A concrete resource.
#[derive(Clone)]
pub struct Resource {
    /// Its URI.
    pub uri: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// MIME type.
    pub mime_type: Option<String>,
    handler: ReadHandler,
}

impl Resource {
    /// A resource whose contents come from `read(ctx, uri)`.
    pub fn new<F, Fut>(uri: &str, name: &str, mime_type: Option<&str>, read: F) -> Self
    where
        F: Fn(Context, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Value>, ErrorObject>> + Send + 'static,
    {
        Self {
            uri: uri.into(),
            name: name.into(),
            description: None,
            mime_type: mime_type.map(Into::into),
            handler: Arc::new(move |ctx, uri, _| Box::pin(read(ctx, uri))),
        }
    }
    /// Sets a description.
    pub fn description(mut self, d: &str) -> Self {
        self.description = Some(d.into());
        self
    }
    fn descriptor(&self) -> Value {
        let mut v = json!({"uri": self.uri, "name": self.name});
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        if let Some(m) = &self.mime_type {
            v["mimeType"] = json!(m);
        }
        v
    }
}

/// A resource template (`{var}` placeholders, RFC 6570 level 1).
#[derive(Clone)]
pub struct ResourceTemplate {
    /// The template, e.g. `test://template/{id}/data`.
    pub uri_template: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// MIME type.
    pub mime_type: Option<String>,
    handler: ReadHandler,
}

impl ResourceTemplate {
    /// A template whose reads get the URI and the matched variables.
    pub fn new<F, Fut>(uri_template: &str, name: &str, mime_type: Option<&str>, read: F) -> Self
    where
        F: Fn(Context, String, BTreeMap<String, String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Value>, ErrorObject>> + Send + 'static,
    {
        Self {
            uri_template: uri_template.into(),
            name: name.into(),
            description: None,
            mime_type: mime_type.map(Into::into),
            handler: Arc::new(move |ctx, uri, vars| Box::pin(read(ctx, uri, vars))),
        }
    }
    /// Sets a description.
    pub fn description(mut self, d: &str) -> Self {
        self.description = Some(d.into());
        self
    }
    fn descriptor(&self) -> Value {
        let mut v = json!({"uriTemplate": self.uri_template, "name": self.name});
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        if let Some(m) = &self.mime_type {
            v["mimeType"] = json!(m);
        }
        v
    }

    /// Matches `uri` against the template, returning the variables.
    pub fn matches(&self, uri: &str) -> Option<BTreeMap<String, String>> {
        match_template(&self.uri_template, uri)
    }
}

/// Level-1 URI template matching: literal text and `{name}` variables that match one or more
/// characters up to the next literal (not across `/`).
pub fn match_template(template: &str, uri: &str) -> Option<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    let mut rest = uri;
    let mut t = template;
    while !t.is_empty() {
        if let Some(after) = t.strip_prefix('{') {
            let end = after.find('}')?;
            let name = &after[..end];
            t = &after[end + 1..];
            let next_lit = t.find('{').map_or(t, |i| &t[..i]);
            let stop = if next_lit.is_empty() {
                rest.find('/').unwrap_or(rest.len())
            } else {
                rest.find(next_lit)?
            };
            let value = &rest[..stop];
            if value.is_empty() || value.contains('/') {
                return None;
            }
            vars.insert(name.to_string(), value.to_string());
            rest = &rest[stop..];
        } else {
            let lit_end = t.find('{').unwrap_or(t.len());
            rest = rest.strip_prefix(&t[..lit_end])?;
            t = &t[lit_end..];
        }
    }
    rest.is_empty().then_some(vars)
}

/// Boxed future of a prompt: the `prompts/get` result.
pub type PromptFuture = BoxFuture<'static, Result<Value, ErrorObject>>;
type PromptHandler = Arc<dyn Fn(Context, BTreeMap<String, String>) -> PromptFuture + Send + Sync>;

/// A prompt template.
#[derive(Clone)]
pub struct Prompt {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Arguments: (name, description, required).
    pub arguments: Vec<(String, String, bool)>,
    handler: PromptHandler,
}

impl Prompt {
    /// A prompt whose handler returns `{description?, messages: [...]}`.
    pub fn new<F, Fut>(name: &str, description: &str, get: F) -> Self
    where
        F: Fn(Context, BTreeMap<String, String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ErrorObject>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: Some(description.into()),
            arguments: Vec::new(),
            handler: Arc::new(move |c, a| Box::pin(get(c, a))),
        }
    }
    /// Declares an argument.
    pub fn argument(mut self, name: &str, description: &str, required: bool) -> Self {
        self.arguments
            .push((name.into(), description.into(), required));
        self
    }
    fn descriptor(&self) -> Value {
        let mut v = json!({"name": self.name});
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        if !self.arguments.is_empty() {
            v["arguments"] = Value::Array(
                self.arguments
                    .iter()
                    .map(|(n, d, r)| json!({"name": n, "description": d, "required": r}))
                    .collect(),
            );
        }
        v
    }
    /// Checks required arguments, then runs the handler.
    pub async fn get(
        &self,
        ctx: Context,
        args: BTreeMap<String, String>,
    ) -> Result<Value, ErrorObject> {
        for (n, _, required) in &self.arguments {
            if *required && !args.contains_key(n) {
                return Err(ErrorObject::invalid_params(format!(
                    "Invalid params: missing required argument `{n}` for prompt {}",
                    self.name
                )));
            }
        }
        (self.handler)(ctx, args).await
    }
}

/// What a completion request refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CompletionRef {
    /// `ref/prompt` by name.
    Prompt(String),
    /// `ref/resource` by URI template.
    Resource(String),
}

/// Boxed future of a completion: candidate values.
pub type CompleteFuture = BoxFuture<'static, Result<Vec<String>, ErrorObject>>;
type CompleteHandler =
    Arc<dyn Fn(Context, String, String, BTreeMap<String, String>) -> CompleteFuture + Send + Sync>;

/// What a node serves. Shared (one `Arc`) by every session: the catalog is not copied.
#[derive(Clone, Default)]
pub struct Registry {
    tools: Vec<Arc<Tool>>,
    tool_index: HashMap<String, usize>,
    resources: Vec<Arc<Resource>>,
    resource_index: HashMap<String, usize>,
    templates: Vec<Arc<ResourceTemplate>>,
    prompts: Vec<Arc<Prompt>>,
    prompt_index: HashMap<String, usize>,
    completions: HashMap<CompletionRef, CompleteHandler>,
    /// Items per page of the list methods.
    pub page_size: usize,
    /// `instructions` returned by `initialize`.
    pub instructions: Option<String>,
    changes: ChangeBus,
}

/// Default page size of list methods.
pub const DEFAULT_PAGE_SIZE: usize = 100;

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            page_size: DEFAULT_PAGE_SIZE,
            ..Default::default()
        }
    }
    /// Adds (or replaces) a tool.
    pub fn tool(&mut self, tool: Tool) -> &mut Self {
        match self.tool_index.get(&tool.name) {
            Some(&i) => self.tools[i] = Arc::new(tool),
            None => {
                self.tool_index.insert(tool.name.clone(), self.tools.len());
                self.tools.push(Arc::new(tool));
            }
        }
        self
    }
    /// Adds a resource.
    pub fn resource(&mut self, r: Resource) -> &mut Self {
        self.resource_index
            .insert(r.uri.clone(), self.resources.len());
        self.resources.push(Arc::new(r));
        self
    }
    /// Adds a resource template.
    pub fn template(&mut self, t: ResourceTemplate) -> &mut Self {
        self.templates.push(Arc::new(t));
        self
    }
    /// Adds a prompt.
    pub fn prompt(&mut self, p: Prompt) -> &mut Self {
        self.prompt_index.insert(p.name.clone(), self.prompts.len());
        self.prompts.push(Arc::new(p));
        self
    }
    /// Registers completions for a prompt's or template's arguments: the handler gets
    /// (argument name, typed prefix, already resolved arguments).
    pub fn completion<F, Fut>(&mut self, r: CompletionRef, f: F) -> &mut Self
    where
        F: Fn(Context, String, String, BTreeMap<String, String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<String>, ErrorObject>> + Send + 'static,
    {
        self.completions
            .insert(r, Arc::new(move |c, n, v, a| Box::pin(f(c, n, v, a))));
        self
    }

    /// The bus on which changes of what this registry serves are published (shared by its
    /// clones). Transports subscribe to it to tell clients (`subscriptions/listen` streams,
    /// session GET streams).
    pub fn change_bus(&self) -> ChangeBus {
        self.changes.clone()
    }
    /// Publishes a change of what this registry serves (see [`Registry::change_bus`]).
    pub fn publish_change(&self, change: Change) -> usize {
        self.changes.publish(change)
    }

    /// Looks up a tool.
    pub fn find_tool(&self, name: &str) -> Option<Arc<Tool>> {
        self.tool_index.get(name).map(|&i| self.tools[i].clone())
    }
    /// Looks up a prompt.
    pub fn find_prompt(&self, name: &str) -> Option<Arc<Prompt>> {
        self.prompt_index
            .get(name)
            .map(|&i| self.prompts[i].clone())
    }
    /// Whether any resource or template serves `uri`.
    pub fn has_resource(&self, uri: &str) -> bool {
        self.resource_index.contains_key(uri)
            || self.templates.iter().any(|t| t.matches(uri).is_some())
    }
    /// Whether there are completions registered.
    pub fn has_completions(&self) -> bool {
        !self.completions.is_empty()
    }

    /// Reads a resource (a concrete one first, then templates in order).
    pub async fn read_resource(&self, ctx: Context, uri: &str) -> Result<Vec<Value>, ErrorObject> {
        if let Some(&i) = self.resource_index.get(uri) {
            let r = self.resources[i].clone();
            return (r.handler)(ctx, uri.to_string(), BTreeMap::new()).await;
        }
        for t in &self.templates {
            if let Some(vars) = t.matches(uri) {
                return (t.handler)(ctx, uri.to_string(), vars).await;
            }
        }
        Err(ErrorObject::resource_not_found(uri))
    }

    /// Runs a completion; unknown references complete to nothing.
    pub async fn complete(
        &self,
        ctx: Context,
        r: &CompletionRef,
        arg: String,
        value: String,
        context_args: BTreeMap<String, String>,
    ) -> Result<Vec<String>, ErrorObject> {
        match self.completions.get(r) {
            Some(h) => h(ctx, arg, value, context_args).await,
            None => Ok(Vec::new()),
        }
    }

    fn page(
        &self,
        items: Vec<Value>,
        key: &str,
        cursor: Option<&str>,
    ) -> Result<Value, ErrorObject> {
        let start = match cursor {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|&s| s <= items.len())
                .ok_or_else(|| {
                    ErrorObject::invalid_params(format!("Invalid params: unknown cursor {c:?}"))
                })?,
        };
        let size = self.page_size.max(1);
        let end = (start + size).min(items.len());
        let mut out = Map::new();
        out.insert(key.into(), Value::Array(items[start..end].to_vec()));
        if end < items.len() {
            out.insert("nextCursor".into(), json!(end.to_string()));
        }
        Ok(Value::Object(out))
    }

    /// `tools/list`.
    pub fn list_tools(&self, cursor: Option<&str>) -> Result<Value, ErrorObject> {
        self.page(
            self.tools.iter().map(|t| t.descriptor()).collect(),
            "tools",
            cursor,
        )
    }
    /// `resources/list`.
    pub fn list_resources(&self, cursor: Option<&str>) -> Result<Value, ErrorObject> {
        self.page(
            self.resources.iter().map(|r| r.descriptor()).collect(),
            "resources",
            cursor,
        )
    }
    /// `resources/templates/list`.
    pub fn list_templates(&self, cursor: Option<&str>) -> Result<Value, ErrorObject> {
        self.page(
            self.templates.iter().map(|t| t.descriptor()).collect(),
            "resourceTemplates",
            cursor,
        )
    }
    /// `prompts/list`.
    pub fn list_prompts(&self, cursor: Option<&str>) -> Result<Value, ErrorObject> {
        self.page(
            self.prompts.iter().map(|p| p.descriptor()).collect(),
            "prompts",
            cursor,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_level_one_variables() {
        let v = match_template("test://template/{id}/data", "test://template/42/data").unwrap();
        assert_eq!(v.get("id").map(String::as_str), Some("42"));
        assert!(match_template("test://template/{id}/data", "test://template//data").is_none());
        assert!(match_template("test://template/{id}/data", "test://template/4/2/data").is_none());
        assert!(match_template("test://template/{id}/data", "test://template/42/datax").is_none());
        let v = match_template("file:///{dir}/{name}", "file:///a/b.txt").unwrap();
        assert_eq!((v["dir"].as_str(), v["name"].as_str()), ("a", "b.txt"));
    }

    #[test]
    fn lists_paginate_with_opaque_cursors() {
        let mut r = Registry::new();
        r.page_size = 2;
        for i in 0..5 {
            r.tool(Tool::new(
                &format!("t{i}"),
                "d",
                json!({"type": "object"}),
                |_, _| async { Ok(CallToolResult::text("x")) },
            ));
        }
        let p1 = r.list_tools(None).unwrap();
        assert_eq!(p1["tools"].as_array().unwrap().len(), 2);
        let c = p1["nextCursor"].as_str().unwrap().to_string();
        let p2 = r.list_tools(Some(&c)).unwrap();
        assert_eq!(p2["tools"][0]["name"], "t2");
        let p3 = r.list_tools(p2["nextCursor"].as_str()).unwrap();
        assert_eq!(p3["tools"].as_array().unwrap().len(), 1);
        assert!(p3.get("nextCursor").is_none());
        assert_eq!(
            r.list_tools(Some("bogus")).unwrap_err().code,
            crate::jsonrpc::code::INVALID_PARAMS
        );
    }
}
