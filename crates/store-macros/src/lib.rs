//! `#[engines]`: a store trait written once, with its methods' bodies, for both storage
//! engines.
//!
//! On `pub trait Trait { async fn m(&self, ...) -> T { body } ... }` the attribute writes
//! the trait as callers see it (each method's signature and documentation, its body
//! left out) and implements it twice with those bodies, for `crate::SqliteStore` and for
//! `crate::PostgresStore` (each through `async_trait`). A body is ordinary code that
//! rustfmt formats; in it `self` is either engine, whose `read`, `scan`, `write` and
//! `write_one` take the same closures.
//!
//! On `impl Trait for Engine { ... }` it writes the impl twice, with `Engine` replaced
//! by each engine: for a trait declared elsewhere.

use proc_macro::{Delimiter, Group, Punct, Spacing, TokenStream, TokenTree};

/// The placeholder an impl is written for.
const PLACEHOLDER: &str = "Engine";
const ENGINES: [&str; 2] = ["crate::SqliteStore", "crate::PostgresStore"];

#[proc_macro_attribute]
pub fn engines(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = item.clone().into_iter().collect();
    let is_trait = tokens
        .iter()
        .any(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "trait"));
    if is_trait {
        return with_bodies(tokens);
    }
    let mut out = TokenStream::new();
    for engine in ENGINES {
        out.extend(async_trait());
        let engine: TokenStream = engine.parse().expect("a valid path");
        out.extend(rename(item.clone(), &engine));
    }
    out
}

fn async_trait() -> TokenStream {
    "#[async_trait::async_trait]"
        .parse()
        .expect("a valid attribute")
}

/// The trait without its methods' bodies, and its impl for each engine with them.
fn with_bodies(tokens: Vec<TokenTree>) -> TokenStream {
    let Some(TokenTree::Group(items)) = tokens.last() else {
        return compile_error("#[engines] expects a trait with a body");
    };
    let head = &tokens[..tokens.len() - 1];
    let Some(name) = head.iter().skip_while(|t| !is_ident(t, "trait")).nth(1) else {
        return compile_error("#[engines] expects `trait Name`");
    };
    let mut out = async_trait();
    out.extend(head.iter().cloned());
    out.extend([TokenTree::Group(Group::new(
        Delimiter::Brace,
        declarations(items.stream()),
    ))]);
    for engine in ENGINES {
        out.extend(async_trait());
        let mut implementation: TokenStream = format!("impl {name} for {engine}")
            .parse()
            .expect("a valid impl header");
        implementation.extend([TokenTree::Group(Group::new(
            Delimiter::Brace,
            items.stream(),
        ))]);
        out.extend(implementation);
    }
    out
}

/// The trait's items with every method body replaced by `;`, and the `mut` of a
/// parameter left out (a declaration has no bindings to make mutable).
fn declarations(items: TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    let mut in_signature = false;
    for token in items {
        match token {
            TokenTree::Ident(ref i) if i.to_string() == "fn" => {
                in_signature = true;
                out.extend([token]);
            }
            TokenTree::Group(g) if in_signature && g.delimiter() == Delimiter::Brace => {
                in_signature = false;
                out.extend([TokenTree::Punct(Punct::new(';', Spacing::Alone))]);
            }
            TokenTree::Group(g) if in_signature && g.delimiter() == Delimiter::Parenthesis => {
                let mut params = Group::new(Delimiter::Parenthesis, without_mut(g.stream()));
                params.set_span(g.span());
                out.extend([TokenTree::Group(params)]);
            }
            TokenTree::Punct(ref p) if in_signature && p.as_char() == ';' => {
                in_signature = false;
                out.extend([token]);
            }
            other => out.extend([other]),
        }
    }
    out
}

/// Parameters without a leading `mut` (one that starts a parameter, not `&mut T`).
fn without_mut(params: TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    let mut at_start = true;
    for token in params {
        let starts_next = matches!(&token, TokenTree::Punct(p) if p.as_char() == ',');
        if !(at_start && is_ident(&token, "mut")) {
            out.extend([token]);
        }
        at_start = starts_next;
    }
    out
}

fn is_ident(token: &TokenTree, name: &str) -> bool {
    matches!(token, TokenTree::Ident(i) if i.to_string() == name)
}

fn compile_error(message: &str) -> TokenStream {
    let mut out: TokenStream = "compile_error!".parse().expect("a valid path");
    out.extend([TokenTree::Group(Group::new(
        Delimiter::Parenthesis,
        TokenStream::from(TokenTree::Literal(proc_macro::Literal::string(message))),
    ))]);
    out.extend([TokenTree::Punct(Punct::new(';', Spacing::Alone))]);
    out
}

/// `tokens` with every `Engine` identifier replaced by the path `engine`.
fn rename(tokens: TokenStream, engine: &TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    for token in tokens {
        match token {
            TokenTree::Ident(ident) if ident.to_string() == PLACEHOLDER => {
                out.extend(engine.clone());
            }
            TokenTree::Group(group) => {
                let mut renamed = Group::new(group.delimiter(), rename(group.stream(), engine));
                renamed.set_span(group.span());
                out.extend([TokenTree::Group(renamed)]);
            }
            other => out.extend([other]),
        }
    }
    out
}
