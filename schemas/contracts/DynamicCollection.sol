// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721URIStorage} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";

/// @title DynamicCollection
/// @notice The sample dynamic-NFT collection dnft indexes: an ERC-721 whose art evolves with
///         on-chain events (`Fed`, `TraitSet`) and which announces new metadata with ERC-4906.
/// @dev Token ids are sequential from 1. Traits live only in `TraitSet` events: the engine
///      derives token state from the event log, so storing them again would only cost gas.
contract DynamicCollection is ERC721URIStorage, AccessControl {
    /// @notice May mint while minting is not public.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    /// @notice May set token URIs and announce metadata refreshes (the dnft pusher holds it).
    bytes32 public constant UPDATER_ROLE = keccak256("UPDATER_ROLE");

    /// @notice Whether anyone may mint; otherwise only MINTER_ROLE.
    bool public immutable publicMint;
    /// @notice Most tokens that can ever exist; 0 means no cap.
    uint256 public immutable maxSupply;

    uint256 private _minted;
    string private _base;

    /// @notice Someone sent `amount` wei to token `tokenId`; the art reacts to being fed.
    event Fed(uint256 indexed tokenId, address indexed by, uint256 amount);
    /// @notice The owner of `tokenId` set trait `key` to `value`.
    event TraitSet(uint256 indexed tokenId, string key, string value);

    error MaxSupplyExceeded(uint256 requested, uint256 maxSupply);
    error NotTokenOwner(uint256 tokenId, address caller);
    error LengthMismatch(uint256 ids, uint256 uris);
    error InvalidRange(uint256 fromTokenId, uint256 toTokenId);
    error WithdrawFailed(address to, uint256 amount);

    /// @param name_ Collection name.
    /// @param symbol_ Collection symbol.
    /// @param baseURI_ Prefix of `tokenURI` for tokens without their own URI (id is appended).
    /// @param publicMint_ Whether anyone may mint.
    /// @param maxSupply_ Supply cap; 0 for none.
    /// @dev The deployer gets the admin, minter and updater roles.
    constructor(
        string memory name_,
        string memory symbol_,
        string memory baseURI_,
        bool publicMint_,
        uint256 maxSupply_
    ) ERC721(name_, symbol_) {
        _base = baseURI_;
        publicMint = publicMint_;
        maxSupply = maxSupply_;
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
        _grantRole(MINTER_ROLE, msg.sender);
        _grantRole(UPDATER_ROLE, msg.sender);
    }

    /// @notice Mints the next token id to `to`.
    /// @dev Uses `_mint`, not `_safeMint`: the receiver hook is skipped so that sample
    ///      setup stays cheap; contracts that cannot hold ERC-721s can still receive one.
    /// @return id The new token id.
    function mint(address to) external returns (uint256 id) {
        return _mintMany(to, 1);
    }

    /// @notice Mints `count` consecutive token ids to `to` in one transaction.
    /// @return firstId The first new id (the last is `firstId + count - 1`); a `count` of 0
    ///         mints nothing.
    function mintBatch(address to, uint256 count) external returns (uint256 firstId) {
        return _mintMany(to, count);
    }

    /// @notice Sets the URI of one token; emits ERC-4906 `MetadataUpdate(id)`.
    function setTokenURI(uint256 id, string calldata uri) external onlyRole(UPDATER_ROLE) {
        _requireOwned(id);
        _setTokenURI(id, uri);
    }

    /// @notice Sets many token URIs in one transaction; one `MetadataUpdate` per token.
    function setTokenURIs(uint256[] calldata ids, string[] calldata uris) external onlyRole(UPDATER_ROLE) {
        if (ids.length != uris.length) revert LengthMismatch(ids.length, uris.length);
        for (uint256 i = 0; i < ids.length; ++i) {
            _requireOwned(ids[i]);
            _setTokenURI(ids[i], uris[i]);
        }
    }

    /// @notice Changes the base URI; every existing token's metadata changes with it, so the
    ///         whole minted range is announced with `BatchMetadataUpdate`.
    function setBaseURI(string calldata baseURI_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _base = baseURI_;
        if (_minted > 0) emit BatchMetadataUpdate(1, _minted);
    }

    /// @notice Announces that metadata of tokens `fromTokenId..toTokenId` (inclusive) changed
    ///         off chain, so marketplaces re-fetch it.
    /// @dev A single token is announced with `MetadataUpdate`, as ERC-4906 recommends.
    function refreshMetadata(uint256 fromTokenId, uint256 toTokenId) external onlyRole(UPDATER_ROLE) {
        if (fromTokenId > toTokenId) revert InvalidRange(fromTokenId, toTokenId);
        if (fromTokenId == toTokenId) {
            emit MetadataUpdate(fromTokenId);
        } else {
            emit BatchMetadataUpdate(fromTokenId, toTokenId);
        }
    }

    /// @notice Feeds an existing token: anyone may, with any amount (including zero).
    function feed(uint256 tokenId) external payable {
        _requireOwned(tokenId);
        emit Fed(tokenId, msg.sender, msg.value);
    }

    /// @notice Sets a free-form trait of a token; only its owner may.
    function setTrait(uint256 tokenId, string calldata key, string calldata value) external {
        if (_requireOwned(tokenId) != msg.sender) revert NotTokenOwner(tokenId, msg.sender);
        emit TraitSet(tokenId, key, value);
    }

    /// @notice Sends the wei collected by `feed` to `to`.
    function withdraw(address payable to) external onlyRole(DEFAULT_ADMIN_ROLE) {
        uint256 amount = address(this).balance;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert WithdrawFailed(to, amount);
    }

    /// @notice Number of tokens minted (none can be burned, so also the highest id).
    function totalSupply() external view returns (uint256) {
        return _minted;
    }

    /// @notice The token's own URI when one is set (a full URI, e.g. `ipfs://...`), else
    ///         baseURI followed by the id.
    /// @dev OpenZeppelin's ERC721URIStorage would prefix a token's own URI with the base URI;
    ///      the pusher sets complete URIs, so they are returned as they are.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireOwned(tokenId);
        string memory own = _suffixURI(tokenId);
        return bytes(own).length > 0 ? own : super.tokenURI(tokenId);
    }

    /// @inheritdoc ERC721URIStorage
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721URIStorage, AccessControl)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }

    function _mintMany(address to, uint256 count) private returns (uint256 firstId) {
        if (!publicMint) _checkRole(MINTER_ROLE);
        uint256 minted = _minted;
        if (maxSupply != 0 && minted + count > maxSupply) revert MaxSupplyExceeded(minted + count, maxSupply);
        firstId = minted + 1;
        for (uint256 i = 0; i < count; ++i) {
            _mint(to, firstId + i);
        }
        _minted = minted + count;
    }

    function _baseURI() internal view override returns (string memory) {
        return _base;
    }
}
