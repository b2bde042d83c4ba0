//! `#[engines]`: a store trait implemented once for both storage engines.
//!
//! The attribute takes `impl Trait for Engine { ... }` and writes it twice, for
//! `crate::SqliteStore` and for `crate::PostgresStore` (each through `async_trait`). The body is
//! ordinary code that rustfmt formats; in it `self` is either engine, whose `read`,
//! `scan`, `write` and `write_one` take the same closures.

use proc_macro::{Group, TokenStream, TokenTree};

/// The placeholder the impl is written for.
const PLACEHOLDER: &str = "Engine";
const ENGINES: [&str; 2] = ["crate::SqliteStore", "crate::PostgresStore"];

#[proc_macro_attribute]
pub fn engines(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    for engine in ENGINES {
        out.extend(
            "#[async_trait::async_trait]"
                .parse::<TokenStream>()
                .expect("a valid attribute"),
        );
        let engine: TokenStream = engine.parse().expect("a valid path");
        out.extend(rename(item.clone(), &engine));
    }
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
