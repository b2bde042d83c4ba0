//! TagResource, UntagResource and ListTagsForResource over Palisade's taggable resources.

use palisade_model::{
    ListTagsForResourceRequest, ListTagsForResourceResponse, Tag as ModelTag, TagResourceRequest,
    TagResourceResponse, UntagResourceRequest, UntagResourceResponse,
};
use palisade_store::{StoreError, Tag};

use crate::arn::ResourceArn;
use crate::{Engine, EngineError, EngineResult, Scope};

const LISTING: &str = "tags";
/// ListTagsForResource has no page-size member; one page holds every tag a resource can have.
const TAGS_PAGE: usize = 50;

/// Converts request tags, refusing a key given twice and more tags than a resource may hold.
pub(crate) fn checked_tags(tags: Vec<ModelTag>, max: usize) -> EngineResult<Vec<Tag>> {
    let mut out: Vec<Tag> = Vec::with_capacity(tags.len());
    for t in tags {
        let key = t.key.unwrap_or_default();
        if out.iter().any(|o| o.key == key) {
            return Err(EngineError::InvalidRequest(format!(
                "tags: the tag key '{key}' is given more than once."
            )));
        }
        out.push(Tag {
            key,
            value: t.value.unwrap_or_default(),
        });
    }
    if out.len() > max {
        return Err(EngineError::LimitExceeded(format!(
            "A resource can have at most {max} tags; the request has {}.",
            out.len()
        )));
    }
    Ok(out)
}

fn found(exists: bool, missing: impl FnOnce() -> EngineError) -> EngineResult<()> {
    if exists {
        Ok(())
    } else {
        Err(missing())
    }
}

impl Engine {
    /// Resolves a resource ARN to one the caller owns and Palisade can tag.
    async fn taggable(&self, scope: &Scope, arn: &str) -> EngineResult<()> {
        let parsed = ResourceArn::parse(arn).ok_or_else(|| {
            EngineError::InvalidRequest(format!(
                "resourceArn '{arn}' is not a valid AWS IoT resource ARN."
            ))
        })?;
        let missing = || EngineError::NotFound(format!("The resource {arn} does not exist."));
        if !parsed.belongs_to(scope) {
            // Another account's or region's resource is indistinguishable from a missing one.
            return Err(missing());
        }
        match parsed.resource_type {
            "mitigationaction" => {
                let found = self
                    .store()
                    .get_mitigation_action(scope, parsed.resource_id)
                    .await?;
                match found {
                    Some(r) if r.arn == arn => Ok(()),
                    _ => Err(missing()),
                }
            }
            "thinggroup" => found(
                self.thing_group_arn_exists(scope, parsed.resource_id, arn)
                    .await?,
                missing,
            ),
            "policy" => found(
                self.policy_arn_exists(scope, parsed.resource_id, arn)
                    .await?,
                missing,
            ),
            "cacert" => found(
                self.cacert_arn_exists(scope, parsed.resource_id, arn)
                    .await?,
                missing,
            ),
            "rolealias" => found(
                self.role_alias_arn_exists(scope, parsed.resource_id, arn)
                    .await?,
                missing,
            ),
            "scheduledaudit" => {
                let found = self
                    .store()
                    .get_scheduled_audit(scope, parsed.resource_id)
                    .await?;
                match found {
                    Some(r) if r.arn == arn => Ok(()),
                    _ => Err(missing()),
                }
            }
            other => Err(EngineError::InvalidRequest(format!(
                "Tagging resources of type '{other}' is not supported by Palisade yet."
            ))),
        }
    }

    pub async fn tag_resource(
        &self,
        scope: &Scope,
        input: TagResourceRequest,
    ) -> EngineResult<TagResourceResponse> {
        let arn = input.resource_arn.unwrap_or_default();
        let max = self.inner.limits.tags_per_resource;
        let tags = checked_tags(input.tags.unwrap_or_default(), max)?;
        self.taggable(scope, &arn).await?;
        match self.store().tag_resource(scope, &arn, &tags, max).await {
            Ok(()) => Ok(TagResourceResponse {}),
            Err(StoreError::LimitExceeded { limit }) => Err(EngineError::LimitExceeded(format!(
                "A resource can have at most {limit} tags."
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn untag_resource(
        &self,
        scope: &Scope,
        input: UntagResourceRequest,
    ) -> EngineResult<UntagResourceResponse> {
        let arn = input.resource_arn.unwrap_or_default();
        self.taggable(scope, &arn).await?;
        self.store()
            .untag_resource(scope, &arn, &input.tag_keys.unwrap_or_default())
            .await?;
        Ok(UntagResourceResponse {})
    }

    pub async fn list_tags_for_resource(
        &self,
        scope: &Scope,
        input: ListTagsForResourceRequest,
    ) -> EngineResult<ListTagsForResourceResponse> {
        let arn = input.resource_arn.unwrap_or_default();
        self.taggable(scope, &arn).await?;
        let tokens = &self.inner.tokens;
        let after = match &input.next_token {
            Some(t) if !t.is_empty() => Some(tokens.open(scope, LISTING, &arn, t)?),
            _ => None,
        };
        let page = crate::paging::Page::fetch(TAGS_PAGE, |n| {
            self.store().list_tags(scope, &arn, after.as_deref(), n)
        })
        .await?;
        let next_token = page.next(|last| tokens.issue(scope, LISTING, &arn, &last.key));
        let tags = page.items;
        Ok(ListTagsForResourceResponse {
            tags: Some(
                tags.into_iter()
                    .map(|t| ModelTag {
                        key: Some(t.key),
                        value: Some(t.value),
                    })
                    .collect(),
            ),
            next_token,
        })
    }
}
